"""Damiao quasi-direct-drive motors (OpenArm) on CAN: ``protocol`` (frame codecs), ``bus`` (``DamiaoBus``), ``settings`` (the deploy file's fields)."""
