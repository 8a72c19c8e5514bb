// Step-through figures: a <figure class="stepper"> holds one <img> per frame. Without
// JavaScript (and in print) every frame shows, one under the other; with it, one frame
// shows at a time, with previous/next buttons, a slider and the arrow keys.
(function () {
    "use strict";
    function setUp(figure) {
        var frames = Array.prototype.slice.call(figure.querySelectorAll("img"));
        if (frames.length < 2) {
            return;
        }
        var controls = document.createElement("div");
        controls.className = "stepper-controls";
        var prev = document.createElement("button");
        prev.type = "button";
        prev.className = "stepper-prev";
        prev.textContent = "\u25C0 previous";
        var next = document.createElement("button");
        next.type = "button";
        next.className = "stepper-next";
        next.textContent = "next \u25B6";
        var slider = document.createElement("input");
        slider.type = "range";
        slider.min = "0";
        slider.max = String(frames.length - 1);
        slider.value = "0";
        slider.setAttribute("aria-label", "frame");
        var count = document.createElement("span");
        count.className = "stepper-count";
        count.setAttribute("aria-live", "polite");
        controls.appendChild(prev);
        controls.appendChild(slider);
        controls.appendChild(next);
        controls.appendChild(count);
        // The frames sit in a box of their own, which scrolls sideways on a narrow screen
        // (stepper.css) while the controls stay in place.
        var box = document.createElement("div");
        box.className = "stepper-frames";
        figure.insertBefore(controls, frames[0]);
        figure.insertBefore(box, frames[0]);
        frames.forEach(function (img) {
            box.appendChild(img);
        });
        figure.classList.add("stepper-live");
        var current = 0;
        function show(i) {
            current = Math.max(0, Math.min(frames.length - 1, i));
            frames.forEach(function (img, j) {
                img.hidden = j !== current;
            });
            slider.value = String(current);
            prev.disabled = current === 0;
            next.disabled = current === frames.length - 1;
            count.textContent = (current + 1) + " / " + frames.length;
            figure.setAttribute("data-frame", String(current));
        }
        prev.addEventListener("click", function () { show(current - 1); });
        next.addEventListener("click", function () { show(current + 1); });
        slider.addEventListener("input", function () { show(parseInt(slider.value, 10)); });
        figure.tabIndex = 0;
        figure.addEventListener("keydown", function (e) {
            if (e.key === "ArrowRight") { show(current + 1); e.preventDefault(); }
            if (e.key === "ArrowLeft") { show(current - 1); e.preventDefault(); }
        });
        show(0);
    }
    function start() {
        Array.prototype.forEach.call(document.querySelectorAll("figure.stepper"), setUp);
    }
    if (document.readyState === "loading") {
        document.addEventListener("DOMContentLoaded", start);
    } else {
        start();
    }
})();
