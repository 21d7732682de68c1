"""A Flask app whose static folder gallop serves with --static /static=static."""
from flask import Flask

app = Flask(__name__)


@app.route("/")
def index():
    return '<link rel="stylesheet" href="/static/style.css">flask with static files'
