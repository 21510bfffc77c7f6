"""Disk usage: virtual disk image formats, allocation patterns, differencing chains and container image layers."""
