"""nfteach.course: the helpers the notebooks share."""
import pytest

from nfteach import course


def test_settings_from_environment(monkeypatch):
    monkeypatch.delenv(course.ENV_BACKEND, raising=False)
    monkeypatch.delenv(course.ENV_KERNEL, raising=False)
    assert course.settings() == ("sim", "5.10")
    monkeypatch.setenv(course.ENV_BACKEND, "vm")
    monkeypatch.setenv(course.ENV_KERNEL, "6.1")
    assert course.settings() == ("vm", "6.1")
    assert course.settings("sim", "6.18") == ("sim", "6.18")
    monkeypatch.setenv(course.ENV_BACKEND, "live")
    monkeypatch.delenv(course.ENV_KERNEL)
    assert course.settings() == ("live", None)


@pytest.fixture
def lab():
    lab = course.open_lab("sim", "5.10")
    yield lab
    lab.close()


def test_banner_names_backend_and_kernel(lab):
    b = course.banner(lab)
    assert "backend sim, kernel profile 5.10" in str(b)
    assert "<code>sim</code>" in b._repr_html_()


def test_prediction_checks_guesses(lab):
    calls = []

    def answer():
        calls.append(1)
        t = lab.script("sudo conntrack -L")
        return str(course.flow_count(t)), t

    q = course.predict("How many?", ["0", "1"], answer, explain="A fresh lab tracks nothing.")
    assert "1. 0" in str(q)
    assert q.check(None).correct is None and q.check("seven").correct is None
    assert not calls, "no guess, no experiment: nothing is given away"
    assert q.check(1).correct is True and q.check("0").correct is True
    assert q.check("2").correct is False          # choice number 2 is "1"
    assert "conntrack -L" in str(q.check(1))
    assert len(calls) == 1, "the lab runs once"


def test_prediction_widget_shows_nothing_until_locked_in(lab):
    pytest.importorskip("ipywidgets")
    q = course.predict("How many?", ["0", "1"], lambda: ("0", lab.script("sudo conntrack -L")),
                       explain="A fresh lab tracks nothing.")
    w = q.widget()
    assert q.observed == "0"                      # what nfteach tour's hidden check does
    assert w.verdict.value == "" and not w.button.disabled
    w.choice.value = "1"
    w.button.click()
    assert "✘" in w.verdict.value and "0 flow entries" in w.verdict.value
    assert "A fresh lab tracks nothing." in w.verdict.value and w.button.disabled


def test_a_closed_lab_says_how_to_reopen_it():
    from nfteach.model.errors import LabError

    lab = course.open_lab("sim", "5.10")
    lab.close()
    with pytest.raises(LabError, match=r"closed; reopen it with `lab = course.open_lab\(\)`"):
        lab.run("sudo conntrack -L")
    assert lab.start().run("sudo conntrack -L").status == 0   # reopened explicitly: a fresh lab
    lab.close()


def test_pictures_fit_the_column():
    wide = '<?xml version="1.0"?>\n<svg width="1800pt" height="90pt" viewBox="0 0 1800 90"><g/></svg>'
    html = course.fit(wide)
    assert html.count("<svg") == 1 and "<?xml" not in html
    assert 'style="max-width:100%;height:auto"' in html and "click the picture" in html
    assert "click the picture" not in course.fit('<svg width="300pt" height="90pt"></svg>')


def test_needs_explains_and_skips(lab, capsys):
    assert course.needs(lab, "sim")
    assert not course.needs(lab, "vm", why="it needs QEMU")
    assert "needs the vm backend (it needs QEMU)" in capsys.readouterr().out


def test_parsers(lab):
    t = lab.script("sudo modprobe nf_conntrack enable_hooks=1\nsudo conntrack -L\nsudo list-nf-hooks")
    (e,) = course.entries(t)
    assert (e.state, e.dport, "ASSURED" in e.flags) == ("ESTABLISHED", 22, True)
    assert course.flow_count(t) == 1
    assert course.run_order(t, "ipv4", "PRE_ROUTING") == ["ipv4_conntrack_defrag", "ipv4_conntrack_in"]
    assert "<svg" in course.hook_chain(t, "ipv4", "LOCAL_IN")._repr_html_()
    assert course.unavailable(lab.script("sudo ping")) is not None


def test_profile_table_and_side_by_side(lab):
    table = course.profile_table()
    assert table.value("destroy", "5.10") == "destroy_conntrack"
    assert table.value("destroy", "6.1") == "nf_ct_destroy"
    side = course.side_by_side(lab, lambda k: "uname -r", ["5.10", "6.1"])
    assert "6.1.0" in side["6.1"].text()
