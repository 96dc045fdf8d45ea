"""Leakage audit: count exact and near-duplicate images across the splits of a data config
(= ``medfew audit``).

    python experiments/audit.py data=brain_mri threshold=4

Prints the counts and writes one CSV row per cross-split pair (indices, splits, labels,
file names when known, pHash distance) to ``csv`` (default: the run folder).
"""

from medfew.cli import audit

if __name__ == "__main__":
    audit()
