"""Customers and companies: who the business serves, by every identity they use."""
