"""Campaign statistics: plain numpy/scipy functions over arrays, vectorised so the bench can
run thousands of simulated experiments at once. No Django here."""
