"""Experiments on fitted models: the baselines (ControlNet, T2I-Adapter), the methods registry,
the data-efficiency study, and the analyses of a fitted posterior behind figures and notebooks."""
