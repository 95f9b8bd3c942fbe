"""Convolutional and residual networks with autograd and torch.nn."""
