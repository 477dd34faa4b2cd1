"""Plain data shared by every layer: results, errors, profiles. Imports nothing of ours."""
