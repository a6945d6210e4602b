"""Development helpers: start the local servers the stack and the tests need."""
