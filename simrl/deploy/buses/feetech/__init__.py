"""Feetech STS servos (the SO-101's STS3215) on their half-duplex serial bus: the wire codec and the bus."""
