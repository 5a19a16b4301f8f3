"""Training helpers: the `Model` artifact and its flavors, input signatures, tuning."""
