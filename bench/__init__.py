"""spendsentry evaluation suite: labelled synthetic spend scenarios and the NAB run (see bench/README.md)."""
