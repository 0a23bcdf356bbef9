"""bench/flame.py's table (issue 16 item 6) reads py-spy's collapsed stacks right: shares of
our own functions and modules, self and with callees, waiting threads left out, and any of
our code above the limit named. (Recording itself needs py-spy, which CI does not install.)"""

from __future__ import annotations

from bench.flame import module_of, own_shares, report

# py-spy --function --format raw: "frame;frame;... count", outermost first.
STACKS = "\n".join(
    [
        'process 1:"oidc-link serve";thread (0x1);_runner (granian/wsgi.py:10);'
        "FastPath.__call__ (oidc_link/web/fast_path.py:117);"
        "show (oidc_link/web/pages.py:72);render (jinja2/environment.py:1) 30",
        'process 1:"oidc-link serve";thread (0x1);_runner (granian/wsgi.py:10);'
        "FastPath.__call__ (oidc_link/web/fast_path.py:117);"
        "show (oidc_link/web/pages.py:72) 10",
        'process 1:"oidc-link serve";thread (0x2);_runner (granian/wsgi.py:10);'
        "FastPath.__call__ (oidc_link/web/fast_path.py:117);"
        "digest (oidc_link/ids.py:20) 8",
        'process 1:"oidc-link serve";thread (0x2);_runner (granian/wsgi.py:10) 52',
        # A thread waiting for a reply: not CPU, left out.
        'process 1:"oidc-link serve";thread (0x3);wait (threading.py:320) 400',
    ]
)


def test_shares_count_busy_samples_only_and_split_self_from_callees() -> None:
    profile = own_shares(STACKS)
    shares = {share.function: share for share in profile.own}

    assert profile.busy == 100
    show = shares["show (oidc_link/web/pages.py:72)"]
    assert (show.self_percent, show.total_percent) == (10.0, 40.0)
    fast_path = shares["FastPath.__call__ (oidc_link/web/fast_path.py:117)"]
    assert (fast_path.self_percent, fast_path.total_percent) == (0.0, 48.0)
    assert profile.modules == {"oidc_link/web/pages.py": 10.0, "oidc_link/ids.py": 8.0}
    assert profile.own_self_percent == 18.0


def test_the_report_names_each_function_and_module_of_ours_above_the_limit() -> None:
    printed = "\n".join(report(own_shares(STACKS), limit=9.0, top=10))

    assert "ABOVE 9 % (self): `show (oidc_link/web/pages.py:72)`, " in printed
    assert "`oidc_link/web/pages.py` (module)" in printed
    assert "digest" not in printed.rpartition("ABOVE")[2]


def test_the_report_says_so_when_nothing_of_ours_is_above_the_limit() -> None:
    printed = "\n".join(report(own_shares(STACKS), limit=50.0, top=10))

    assert "No function and no module of our own above 50 %" in printed
    assert "ABOVE" not in printed


def test_a_frame_names_its_module_by_its_path_from_the_package() -> None:
    assert module_of("show (/srv/app/oidc_link/web/pages.py:72)") == "oidc_link/web/pages.py"
