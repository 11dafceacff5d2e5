"""beft's Hydra launchers (``conf/hydra/launcher/{local,submitit_local,slurm}.yaml``): see beft/sweeps/skip.py."""
