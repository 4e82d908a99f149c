"""Motor buses: one module per motor family, each implementing ``base.MotorBus`` over its own wire."""
