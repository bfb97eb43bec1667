"""Go's text/tabwriter semantics: tab-terminated cells, column blocks, minwidth and padding."""

from __future__ import annotations

from dockyard.cli.tabwriter import display_width, tabwrite


def test_docker_table_settings():
    text = "CONTAINER ID\tIMAGE\tNAMES\nabc\tbusybox:dockyard-test\tzz\n"
    assert tabwrite(text) == (
        "CONTAINER ID   IMAGE                   NAMES\n"
        "abc            busybox:dockyard-test   zz\n")


def test_minwidth_applies_to_short_columns():
    assert tabwrite("A\tB\n") == "A         B\n"


def test_last_cell_is_not_a_column():
    # text after the last tab is not padded, however long
    assert tabwrite("a\tlong trailing text\nbb\tx\n") == "a         long trailing text\nbb        x\n"


def test_go_doc_example_column_blocks():
    # from the text/tabwriter package documentation: b and c are distinct column blocks
    text = "aaaa\tbbb\td\naa\tb\tdd\na\t\naa\tcccc\teee\n"
    assert tabwrite(text, 0, 1, 1, ".") == (
        "aaaa.bbb.d\n"
        "aa...b...dd\n"
        "a....\n"
        "aa...cccc.eee\n")


def test_line_without_tabs_ends_blocks():
    text = "a\tb\nheading\nlonger cell\tc\n"
    assert tabwrite(text, 0, 1, 1, " ") == "a b\nheading\nlonger cell c\n"


def test_unterminated_last_line_and_empty_input():
    assert tabwrite("a\tb") == "a         b"
    assert tabwrite("") == ""
    assert tabwrite("x\t") == "x"


def test_version_layout_minwidth_20_padding_1():
    text = " Version:\t1\n API version:\t1.41\n"
    assert tabwrite(text, 20, 1, 1, " ") == " Version:           1\n API version:       1.41\n"


def test_wide_runes_count_double():
    assert display_width("日本") == 4
    assert display_width("e\u0301") == 1
    assert tabwrite("日本\tx\nab\ty\n", 0, 1, 1, " ") == "日本 x\nab   y\n"


def test_tab_padding():
    assert tabwrite("a\tb\n", 8, 8, 1, "\t") == "a\tb\n"
