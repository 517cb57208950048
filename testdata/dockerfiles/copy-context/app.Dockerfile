FROM scratch
COPY src/ /app/
COPY *.txt /texts/
COPY ["docs/read me.md", "/docs/"]
ADD archive.tar /unpacked/
