"""The JSON API of docs/operations.md: routes, named dependencies, request and response models."""
