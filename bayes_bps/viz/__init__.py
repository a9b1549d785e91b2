"""What people look at: the paper figures, a finished fit's report, and the runs behind them."""
