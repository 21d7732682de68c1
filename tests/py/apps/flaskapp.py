from flask import Flask, jsonify, request

app = Flask(__name__)


@app.route("/")
def index():
    return "flask index"


@app.route("/json", methods=["POST"])
def echo_json():
    data = request.get_json()
    return jsonify(got=data, method=request.method)


@app.route("/form", methods=["POST"])
def form():
    return jsonify(dict(request.form))


@app.route("/user/<name>")
def user(name):
    return jsonify(name=name, args=dict(request.args), script_root=request.script_root, path=request.path)


@app.route("/upload", methods=["PUT"])
def upload():
    return jsonify(size=len(request.get_data()))


@app.route("/fail")
def fail():
    raise RuntimeError("flask-failure-marker")
