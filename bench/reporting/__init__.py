"""The evidence report: notebooks run by papermill, their claims, the index page, the regression history and
comparison, and the plots. Uses every other part of the harness."""
