//! One self-contained HTML report with plots of measurements, predictions and schedules.
