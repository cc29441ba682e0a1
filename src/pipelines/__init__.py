"""The jobs, one module each: train, evaluate, upcycle (a dense checkpoint into an MoE one). Each turns the
composed config into objects through builders.py and runs them; the entry points in src/ call these."""
