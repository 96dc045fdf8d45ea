"""medfew's Hydra configs, installed as the package ``medfew.configs`` (``pkg://medfew.configs``)."""
