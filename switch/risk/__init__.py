"""Risk and fraud: the "risk" stage's signals, declarative rules, decisions and fallback.

- ``facts``: what one request contributes (typed, no PAN: the card token) and the store
  observation it makes (velocity counters, sightings);
- ``signals``: the store's history turned into the signals rules read (counts and amounts in
  sliding windows, the card's usual amount, new terminal or merchant, other countries);
- ``rules``: a versioned TOML file of CEL expressions over the signals: scores with reason
  codes, hard limits, allow and block lists, thresholds;
- ``engine``: one request's assessment inside its slice of the budget, the fallback when the
  store cannot answer in time, shadow rule sets, reload of changed files, metrics.
"""
