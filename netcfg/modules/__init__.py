"""Plain `torch.nn` modules that sections build; importable without the cfg machinery."""
