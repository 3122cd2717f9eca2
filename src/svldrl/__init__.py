"""svldrl: staged voxel-level deep reinforcement learning for 3D segmentation with noisy labels."""

__version__ = "0.1.0"
