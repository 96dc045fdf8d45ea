from medfew.models.backbone import Backbone, create_backbone, load_backbone, open_residual_branches, save_backbone
from medfew.models.conv4 import Conv4

__all__ = ["Backbone", "Conv4", "create_backbone", "load_backbone", "open_residual_branches", "save_backbone"]
