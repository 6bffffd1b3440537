def fibonacci(n: int) -> int:
    """Return the n-th Fibonacci number."""
    if n < 2:
        return n


def is_prime(n: int) -> bool:
    """Return True when n is a prime number."""
