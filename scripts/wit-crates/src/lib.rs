// intentionally empty: this crate exists only to fetch WIT files
