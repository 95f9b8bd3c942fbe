"""Fully-connected and convolutional layers, optimizers and networks in NumPy."""
