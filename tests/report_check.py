"""Fail unless the junit report shows tests that ran and none that failed.

`make test` runs this after pytest, because a run can end with status 0 having run nothing
(pytest collecting no tests is status 5, but an import that calls sys.exit(0) is not; see
NOTES on great_expectations + pyspark). Usage: python tests/report_check.py REPORT.xml
"""

import sys
import xml.etree.ElementTree as ET
from pathlib import Path


def main(path: str) -> int:
    report = Path(path)
    if not report.is_file():
        print(f"report_check: {report} was not written: the test run did not finish")
        return 1
    root = ET.parse(report).getroot()
    suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))
    total = sum(int(s.get("tests", 0)) for s in suites)
    skipped = sum(int(s.get("skipped", 0)) for s in suites)
    failed = sum(int(s.get("failures", 0)) + int(s.get("errors", 0)) for s in suites)
    ran = total - skipped
    print(f"report_check: {ran} tests ran, {skipped} skipped, {failed} failed")
    if ran <= 0:
        print("report_check: no test ran; failing")
        return 1
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else ".reports/junit.xml"))
