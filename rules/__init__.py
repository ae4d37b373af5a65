"""Rule model, stateful engine, built-in rules, backtest."""
