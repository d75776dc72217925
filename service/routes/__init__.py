"""Route tables. Each module exposes ``routes``; handlers parse, call a service, render."""
