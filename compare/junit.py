"""--junit: JUnit XML that CI systems display, one testcase per quantity."""
import xml.etree.ElementTree as ET  # noqa: N817

from .report import atomic_write, summary
from .names import QUANTITIES


def junit_xml(report):
    """A <testsuite> with a testcase per quantity; the failing one carries the mismatch report."""
    net = report["network"]
    name = f"compare.{'-'.join(map(str, net['layers']))}.{report['backend']}.{report['dtype']}"
    failing = (report["first_mismatch"] or report["nonfinite"] or {}).get("quantity")
    incomplete = report.get("verdict") == "incomplete"
    suite = ET.Element("testsuite", name=name, tests=str(len(QUANTITIES) + 1), failures="0" if report["ok"] else "1",
                       errors="0", time=f"{report['timing']['total_s']:.3f}")
    props = ET.SubElement(suite, "properties")
    for key in ("steps_checked", "steps_requested", "mode", "computed_dtype"):
        ET.SubElement(props, "property", name=key, value=str(report[key]))
    text = summary(report)
    for q in QUANTITIES:
        s = report["max_diff"][q]
        case = ET.SubElement(suite, "testcase", classname=name, name=f"{q} agrees for steps 0-{report['steps_checked'] - 1}",
                             time="0")
        if q == failing or (failing is None and not report["ok"] and not incomplete and q == "loss"):
            message = report["diagnosis"] or f"{q} disagrees"
            ET.SubElement(case, "failure", message=message, type="mismatch").text = text
        else:
            ET.SubElement(case, "system-out").text = (
                f"largest |diff| {s['abs_diff']:.3g}, largest diff/tolerance {s['tolerance_ratio']:.3g}")
    case = ET.SubElement(suite, "testcase", classname=name, name="every step asked for was compared", time="0")
    if incomplete:
        ET.SubElement(case, "failure", message=f"{report['steps_checked']} of {report['steps_requested']} steps "
                      "compared", type="incomplete").text = text
    return ET.tostring(suite, encoding="unicode", xml_declaration=True)


def write_junit(path, report):
    atomic_write(path, junit_xml(report) + "\n")
