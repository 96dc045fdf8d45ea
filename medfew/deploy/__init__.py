"""From a comparison's chosen learner to predictions on new scans: ``medfew fit`` trains it on the
labelled images and writes a model bundle (``bundle``); ``medfew predict`` reads any folder of images
(``inputs``), writes their predicted classes (``predict``) and, on request, Grad-CAM overlays (``explain``)."""

from medfew.deploy.bundle import Bundle, Preprocessing, load_bundle, save_bundle

__all__ = ["Bundle", "Preprocessing", "load_bundle", "save_bundle"]
