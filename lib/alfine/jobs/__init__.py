"""Jobs: what the commands do, as library calls (volumes + blockwise + tasks); tools only parse flags."""
