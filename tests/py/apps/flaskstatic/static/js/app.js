document.addEventListener("DOMContentLoaded", () => console.log("gallop static"));
