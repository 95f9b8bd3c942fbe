"""Fully-connected and convolutional networks on PyTorch tensors, hand-written backward passes."""
