"""The JSON API of CONTRACT §5: routes, named dependencies, request and response models."""
