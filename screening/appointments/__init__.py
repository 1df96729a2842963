"""Appointments: bookings from the desk, a CSV file or the JSON API, and the invitations sent for them."""
