"""Clients across visits: one person's appointments, screenings and sessions; re-screening and the day of treatment."""
