"""Kubernetes access shared by the resource gateway, the Kubernetes triggers and the controller."""
