"""``python -m svldrl`` runs the CLI; torchrun needs it: ``torchrun --nproc_per_node=N -m svldrl train ...``."""

from svldrl.cli import main

if __name__ == "__main__":
    main()
