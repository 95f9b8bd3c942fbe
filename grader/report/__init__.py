"""Writers: each renders a GradingResult and decides nothing."""
