# nbgrader configuration of the tfckd_lite course. The course root is the folder of this file:
# source/ holds the instructor versions (committed); release/, submitted/, autograded/,
# feedback/ and gradebook.db are nbgrader's working folders (git-ignored). Guide: README.md.
import os

c = get_config()  # noqa: F821 (provided by nbgrader's config loader)

c.CourseDirectory.course_id = "tfckd_lite"
c.CourseDirectory.root = os.path.dirname(os.path.abspath(__file__))

# Autograding runs every notebook top to bottom; a4_ablation trains for a few seconds in one
# cell, so allow slow student machines more than nbgrader's default of 30 s per cell.
c.Execute.timeout = 300
