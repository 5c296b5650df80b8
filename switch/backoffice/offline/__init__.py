"""Settlement of offline spends (issue 13): ``trust`` (the trust book: what terminals were
told at each sync), ``settle`` (verify, claim, audit the allowance, raise cases, pay)."""
