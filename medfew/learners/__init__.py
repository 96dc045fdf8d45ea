from medfew.learners.base import Learner, PrepareContext

__all__ = ["Learner", "PrepareContext"]
