"""Model specifications: parameters, forward, loss and gradient in float64 NumPy, the judge
every implementation is tested against."""
