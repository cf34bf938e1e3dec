"""Acquisition: the archives' layouts, HTTP downloads with retries, format checks, manifests, gaps."""
