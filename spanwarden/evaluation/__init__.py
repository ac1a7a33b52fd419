"""Evaluation of detection quality: synthetic labelled corpora and the scores they are judged by."""
