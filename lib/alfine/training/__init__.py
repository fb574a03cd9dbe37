"""Training: run configs, the data pipeline (crops, augmentation, targets), the trainer loop and run directories.

Only the trainer and checkpoint modules import torch; configs and the sample pipeline do not.
"""
