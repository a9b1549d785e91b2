"""Helpers every stage shares and that know nothing of diffusion: options, images, seeding."""
