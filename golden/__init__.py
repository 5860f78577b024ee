"""golden: bake pinned, verified golden OS images for NVIDIA GPU hosts."""

from pathlib import Path

__version__ = "0.1.0"

#: The project checkout golden runs from (profiles/, templates/, scripts/, verify/).
ROOT = Path(__file__).resolve().parent.parent
