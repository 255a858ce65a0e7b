"""The feature networks of the learned quality metrics, laid out key for key like their released state dicts.

``alexnet`` and ``vgg`` hold torchvision's AlexNet and VGG16 feature stacks (LPIPS's trunks), ``inception`` the
Inception v3 that pytorch-fid ported from TensorFlow for FID; ``base`` loads a released file into them. Each
file is checked by the same strict loader as SyncNet's, so a file of another architecture is refused by name
instead of producing numbers. Importing this package loads no heavy library; its modules import torch.
"""
